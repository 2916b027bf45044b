

fuzz-framework2

t1
a1