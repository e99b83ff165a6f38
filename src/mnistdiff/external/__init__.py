"""Models from other libraries behind our interface: model(xt, t) -> eps and a Schedule.

diffusers.py loads a diffusers UNet2DModel (a pipeline folder or a bare model folder) for every
command; stable_diffusion.py runs DDIM inversion and the inversion-merge in a Stable Diffusion
pipeline's latent space. Both need `pip install 'mnistdiff[diffusers]'`, imported only when used.
"""
