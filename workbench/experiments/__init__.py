"""Experiments: the tour, the bake-off runner, the SAE replication and training recipe, the
gallery and the benchmarks. This layer writes files, prints and draws; it is built on the library
(``workbench.*``) and on ``workbench.plots``, and nothing in the library imports it.
"""
