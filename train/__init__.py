"""Training scripts and their importable parts.

Scripts (each a recipe over the modules; ``python train/x.py`` or ``python -m train.x`` from an installed
checkout): ``train_cnn`` (a small CNN or MLP from scratch), ``transfer`` (a pretrained backbone with a new
head), ``convert_weights``, ``fashion_folder``, ``digits_folder``. Modules: ``data`` (Fashion-MNIST, the data
options), ``folders`` (ImageFolder data sets, held decoded in memory), ``pipelines`` (torchvision eval and
training pipelines), ``config`` (``DataConfig``: the checkpoint's data config), ``models``, ``augment``,
``engine`` (train/eval loop, DDP), ``recipe`` (the steps every script shares), ``report`` and ``checkpoint``
(what a run writes).

Not part of the ``edgeinfer`` runtime: everything here needs the ``[train]`` extra (torch, torchvision),
except ``config``, which is torch-free.
"""
