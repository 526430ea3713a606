module golat.test/inspect

go 1.17
