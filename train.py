"""Train a PINN from the Hydra configs in conf/: ``python train.py experiment=burgers``."""

from lightning_pinn.cli import main

if __name__ == "__main__":
    main()
