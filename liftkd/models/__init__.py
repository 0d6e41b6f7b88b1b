"""The networks (paper section 5, "students"): diffusers U-Net and DiT presets and pretrained
teachers (``presets``), Diff-Pruning's structured pruning and DiT depth pruning (``pruning``),
BK-SDM's block removal (``block_removal``), pruned-model files (``checkpoints``) and the pruned
U-Net class an exported folder carries (``pruned_unet``).
"""
