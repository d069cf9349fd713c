"""``python -m pipeline.cli``: the same as the ``scenetag`` console script."""

from pipeline.cli import main

if __name__ == "__main__":  # importing this module (pkgutil walks it) runs nothing
    main()
