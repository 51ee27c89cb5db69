"""Code the tests import: small models and data, the resume scenario, the parity runner, tracker helpers,
a W&B run-file reader, and the checkout's paths and environment for the processes tests start."""
