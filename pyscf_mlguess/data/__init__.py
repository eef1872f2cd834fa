"""Training data: QM9 molecules, reference KS-DFT calculations and their compact storage.

Training-time code only; the runtime path (grid -> model -> project -> guess) never imports it.
Needs the ``train`` extra: ``pip install '.[train]'``.
"""
