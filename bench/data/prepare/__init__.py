"""Data preparation: from a folder of raw talking videos of one speaker to a dataset in the project's
format (the paper's pipeline). The stages and their files are described in
``bench.data.prepare.pipeline``; the command is ``imac-bench data prepare``.

Modules: ``sources`` (finding videos, scene split, measuring each scene once), ``faces`` (frontal
face detection), ``speakers`` (active-speaker counts from TalkNet), ``motion`` (SMPL-X fits from
SHOW into the motion npz), ``crop`` (the square crop), ``split`` (train/test by source, statistics),
``pipeline`` (the run), ``cli`` (its arguments).
"""
