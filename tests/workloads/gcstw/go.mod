module golat.test/gcstw

go 1.17
