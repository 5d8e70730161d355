"""Networks: plain nn.Modules, one file per architecture, built from `blocks`."""
