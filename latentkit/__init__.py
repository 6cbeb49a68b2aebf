"""latentkit: deep-network pruning seen through a probabilistic latent space of the weights.

Modules
-------
latent       projections of weights and latent distributions fitted to them
divergence   KL (registered with torch.distributions), Monte Carlo KL, Hellinger, W2, TV bounds
patterns     AP2 / AP3 of a layer pair and per-layer tables
theory       numerical checks of the lemmas and bounds, each returning both sides
pruning      masks for any nn.Module, on the weights' own device, torch.nn.utils.prune compatible
zoo          AlexNet / VGG16 / ResNet50 for CIFAR10/100 and the offline stand-in data
grid         the paper's protocol as a resumable, cached grid (config, cache, engines, plan)
claims       the paper's claims 2-7 as verdict tables
plots        the book's figures
cli          python -m latentkit run CONFIG | report DIR | plan CONFIG
book         the chapters' scale switch (LATENTKIT_SCALE, LATENTKIT_RESULTS)

Examples
--------
>>> import latentkit.options
>>> latentkit.options.FAMILIES
('gaussian', 'student_t')
"""

__version__ = "0.1.0"
