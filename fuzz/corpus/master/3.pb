

fuzz-framework	J


t1