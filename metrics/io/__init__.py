"""Media and files: everything in the project that reads or writes video, audio or result files.

``video`` (PyAV: streaming decode, H.264 encode with the audio muxed in), ``audio`` (mono float
waveforms, wav files, resampling), ``files`` (atomic files and model folders, the file SHA-256),
``cache`` (per-video results keyed by content), ``weights`` (networks' weight files, read bounded
and loaded strictly). The project's audio rate lives here.
"""

SAMPLE_RATE = 16000
"""The project's audio rate (Hz): dataset wavs, speech features (HuBERT is trained at 16 kHz) and
beat detection all use it; a file at another rate is resampled on reading."""
