"""Outside systems behind small protocols: WeChat's API, WeChat Pay, the bank, Redis (and the card system)."""
