"""SkyPilot `vms.csv` catalogs -> public `Offer`s.

One offer per (cloud, region, zone, instance type, market): an on-demand offer where the
row has an on-demand price, a spot offer where it has a spot price. Ids read
`aws/us-east-1/use1-az1/p4d.24xlarge/spot` (no zone part where the cloud has none, as on
Azure and Lambda; GCP GPUs attached to an N1 host read `.../n1-standard-8+T4:1/on-demand`).
Every GPU offer carries the catalog's own accelerator name as the label `accelerator`:
SkyPilot needs it to launch (`H100-MEGA`, where the canonical name is `H100`).

The catalogs have errors (see `configs/catalogs/README.md`). None of them stops a load; each
becomes one line in `CatalogLoad.warnings`, grouped per file, instance type and problem:

- no on-demand price: the spot offer alone is kept; no price at all: the row is skipped;
  a price of zero or below, or one that is not a number: that price is treated as absent;
- spot equal to or above on-demand: both offers are kept, as listed;
- GPU counts that cannot be right (zero or below, over 16 per VM, or a fraction of a GPU that
  clouds do not sell in slices): skipped, unless the true count is known from the instance
  name or `rows._KNOWN_GPU_COUNTS` (Azure ND96isr_H100_v5 says 12; it has 8), then fixed;
- accelerators with no GPU memory figure (TPUs, Inferentia, ...): skipped;
- GCP (host and GPU priced apart, see `gcp.gcp_offers`): a host price of 0.0 (a4-highgpu-8g)
  leaves the GPU row as the whole price, a lower bound, rather than dropping the only B200
  machine GCP lists; GPU machine types SkyPilot does not map to their GPUs (a3-edgegpu-8g,
  the -nolssd variants) are skipped, as neither GPU nor CPU offers; a GPU row with no host in
  its zone, or in a count GCP does not attach, is skipped.

The package: `rows` (a row read, checked and made an offer), `gcp` (hosts and GPUs combined),
`loading` (catalog directories, `load_catalogs`).
"""

from clouds.catalog.loading import (SHIPPED_CATALOG_DIR, SKYPILOT_CATALOG_VERSION, CatalogLoad, default_catalog_dirs,
                                    instance_accelerators, load_catalog_dir, load_catalogs, skypilot_catalog_dir)

__all__ = ["SHIPPED_CATALOG_DIR", "SKYPILOT_CATALOG_VERSION", "CatalogLoad", "default_catalog_dirs",
           "instance_accelerators", "load_catalog_dir", "load_catalogs", "skypilot_catalog_dir"]
