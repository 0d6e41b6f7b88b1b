"""Training and sampling: the DDPM schedule and forward noising (``diffusion``), the one training
loop (``train``) and what it leaves on disk (``train_state``), students trained side by side
against one teacher (``distill``), DDIM with one seed per image (``sampling``).
"""
