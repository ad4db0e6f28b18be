"""The experiment harness: run folders, configs, the runner, verdicts and reference records.

The ground floor: every science package imports it and it imports none of them. No torch.
"""
