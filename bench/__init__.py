"""AutoML-versus-hand-coded technology selection harness.

Kept empty of imports on purpose: ``bench --help`` and ``bench list`` must not load any framework.
"""

__version__ = "0.1.0"
