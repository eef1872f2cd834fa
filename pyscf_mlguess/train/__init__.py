"""Training and fine-tuning of the density network (training-time code; needs ``.[train]``)."""
