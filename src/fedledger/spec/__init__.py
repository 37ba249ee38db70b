"""The job spec: what a job's participants agree on, checked, canonical and hashed.

`from fedledger.spec import JobSpec` is how every layer reads it. The package keeps the
fields (`fields.py`), the rules and derived values over them with the canonical form
(`job.py`), and the cached privacy-accountant answers they need (`privacy.py`) apart.
"""

from fedledger.spec.fields import AGGREGATIONS, DATASETS, MODELS, PARTITIONS, SECAGG_RULES, JobFields
from fedledger.spec.job import JobSpec
from fedledger.spec.privacy import dp_micro_epsilon, dp_noise_for, dp_rounds_affordable

__all__ = [
    "AGGREGATIONS",
    "DATASETS",
    "MODELS",
    "PARTITIONS",
    "SECAGG_RULES",
    "JobFields",
    "JobSpec",
    "dp_micro_epsilon",
    "dp_noise_for",
    "dp_rounds_affordable",
]
