"""The ``elasticity`` command line: the dispatcher, the experiment registry, ``reproduce``,
``figures`` and each group's commands. Every group is imported only when it runs."""
