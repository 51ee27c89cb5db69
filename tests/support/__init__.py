"""Code the tests import: small models and data, the parity runner, tracker helpers, a W&B file reader."""
