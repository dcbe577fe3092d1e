"""Moving a container's files between the submit host and a node that
shares no filesystem with it: tar streams out (pack), unpacked without
ever stepping outside the destination (safe_extract), what a container
changed (tree_changes), and whether two hosts already see the same tree
(tree_probe).

Shipped to compute nodes inside the job script: stdlib only, Python 3.6+.
"""
