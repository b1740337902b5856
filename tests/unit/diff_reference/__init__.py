"""The flash diff and diagnosis as they were before the sparse rewrite (issue 18), frozen
here as the oracle of ``test_unit_diff_equivalence.py``: the faster ``rig.diff`` must give
exactly the results of this slower, simpler code (kinds, regions, counts, messages). Copied
from rig/ at commit e2b3106~1 with only the imports made relative; do not change it."""
