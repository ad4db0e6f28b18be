"""Theory of elasticity: token trees, coding, Pareto fits, the sympy derivation, simulations.

Also the run/config plumbing every command uses. Nothing here imports torch.
"""
