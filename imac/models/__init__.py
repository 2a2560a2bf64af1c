"""The IMAC networks, each its own small module.

``audio_encoder``: MFCC self-attention + frozen-HuBERT features fused per frame.
``motion``: the audio-to-motion diffusion branch (two temporal transformer encoders, pose and
expression; epsilon prediction) and its normalisation, bundled as a diffusers ``ModelMixin``.
``coupling``: the implicit coupling to the video UNet: per-frame motion cross-attention and the
reference encoder's residuals, added after every spatial cross-attention by an attention processor.
``video``: builders for the video branch (I2VGen-XL UNet, VAE, CLIP image encoder; pretrained or tiny).
"""
