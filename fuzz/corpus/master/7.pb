

fuzz-frameworkš"
 
nobodyfuzz
fuzz-framework