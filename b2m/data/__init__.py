"""Dataset adapters for the ds003720 layout, stimulus timelines and response preparation."""
