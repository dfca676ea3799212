"""Training scripts and their importable parts: Fashion-MNIST data, model builders, the train loop.

Not part of the ``edgeinfer`` runtime: everything here needs the ``[train]`` extra (torch, torchvision).
"""
