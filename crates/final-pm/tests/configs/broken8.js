// The module itself throws while it is loaded.
throw new Error('$$$ERROR$$$');
