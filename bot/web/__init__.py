"""HTTP entry points besides the webhook: H5 pages and their APIs, the pay notify, integration pushes, ops."""
