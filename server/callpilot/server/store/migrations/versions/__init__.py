"""Migration scripts, one per revision, named NNNN_<slug>.py in order."""
