"""The experiment protocols, written once over the model protocol and the task abstraction."""
