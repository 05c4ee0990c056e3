"""The wire layer: one blueprint per noun; parse and validate, hand work to runners, shape responses."""
