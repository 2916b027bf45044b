

fuzz-frameworkz
*