"""Training: model builders, the device-resident fit loop, metrics, devices and threads."""
