"""launchgate: AI agents reach production only through gates that can fail a release."""

__version__ = "0.1.0"
GROUP = "launchgate.dev"
VERSION = "v1alpha1"
