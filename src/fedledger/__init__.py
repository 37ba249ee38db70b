"""fedledger: federated learning coordinated, audited and paid by smart contracts."""

__version__ = "0.1.0"
