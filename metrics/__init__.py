"""Evaluation of co-speech gesture videos: video/audio I/O, pose extraction, FGD, Diversity, BAS, FVD.

Standalone: imports nothing else of the project.
"""
