"""Theory of elasticity: token trees, coding, Pareto fits, the sympy derivation, the mixture model
and its simulations. Nothing here imports torch.
"""
