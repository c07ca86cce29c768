"""Reports to authorities: NCMEC's CyberTipline through its API, others as a package an operator files by hand."""
