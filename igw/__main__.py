"""`python -m igw`: the same as the `igw` console script."""

from igw.cli import main

raise SystemExit(main())
