module golat.test/runq

go 1.17
