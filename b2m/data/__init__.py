"""Dataset adapters: BIDS studies and their designs, events, responses, the synthetic studies."""
