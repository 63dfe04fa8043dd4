"""The pure core: exact numbers, the window and its signal, and tallies that merge."""
