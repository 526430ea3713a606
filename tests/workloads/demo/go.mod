module golat.test/demo

go 1.17
