"""SAE checkpoints -> one :class:`SAE` object (imports torch)."""

from audiosaebench.sae.loading import load_sae
from audiosaebench.sae.sae import SAE, SAEInfo
from audiosaebench.sae.writing import write_saelens_v6

__all__ = ["SAE", "SAEInfo", "load_sae", "write_saelens_v6"]
