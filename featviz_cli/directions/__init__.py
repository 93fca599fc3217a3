"""Beyond single neurons: dictionaries of directions, neuron groups (factors), caricatures,
activation grids and activation atlases.

By job: ``matrix`` (N x C dictionary files), ``sample`` (a bounded, resumable sample of a
layer's activation vectors over a folder), ``factors`` (NMF/PCA/ICA of that sample),
``neuron_groups`` (``featviz factors``: the matrix, the maps, the renders, the page),
``caricature`` (feature inversion of a photo, several layers in one batch), ``layout``
(where caricatures go in an output directory), ``grid`` (the activation grid of a photo),
``atlas`` (the activation atlas) and ``render`` (a dictionary rendered as a sweep; maps and
tiles). Nothing is imported here, so that importing one module stays cheap.
"""
