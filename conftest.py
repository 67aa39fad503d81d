"""The repository root's conftest: it only marks the root for pytest (so `bench` imports from a
checkout). The conformance plugin is registered by the installed package's `pytest11` entry point
(install.sh installs the checkout editable); with plugin autoloading off, pass
`-p hsm_lifecycle.conformance.plugin`. No `pytest_plugins` here: pytest refuses it in a conftest
that is not at the rootdir, which this one is when `pytest --hsm-suite` runs from another folder
with the checkout installed editable."""
