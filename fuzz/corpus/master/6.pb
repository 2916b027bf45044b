

fuzz-framework‚
*