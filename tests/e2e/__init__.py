"""End-to-end ground truth: the nine partners' own exports through the public CLI."""
