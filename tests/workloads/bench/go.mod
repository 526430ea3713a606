module golat.test/bench

go 1.17
