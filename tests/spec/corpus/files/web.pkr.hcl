# a stand-in template: validation only checks that it exists
