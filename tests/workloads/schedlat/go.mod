module golat.test/schedlat

go 1.17
