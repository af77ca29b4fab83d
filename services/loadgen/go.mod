module github.com/gwpipe/gwpipe/services/loadgen

go 1.26.8

require github.com/gwpipe/gwpipe/pkg v0.0.0

replace github.com/gwpipe/gwpipe/pkg => ../../pkg
